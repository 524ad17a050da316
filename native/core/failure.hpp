// What a user is told when something fails. A lethe::Error already says what, where,
// expected and got, and is shown as it is. Anything else is a bug or a library's raw error
// (a json.exception, std::map::at, a torch message with its C++ backtrace): the user gets one
// clear line, and the details go to a log file whose path the line gives. Running out of
// memory says so, with what to lower.
#pragma once

#include <exception>
#include <filesystem>
#include <string>

namespace lethe {

// Where internal errors are logged: $LETHE_LOG_DIR, else $XDG_STATE_HOME/lethe/logs, else
// ~/.local/state/lethe/logs, else the system's temporary folder.
std::filesystem::path log_directory();

// The user-facing message for `error`, raised while doing `doing` ("node 7 (LetheSample)").
// For anything but a lethe::Error, the full text is appended to a new log file in
// `log_folder` (default: log_directory()) and the message names it.
std::string user_message(const std::exception& error, const std::string& doing,
                         const std::filesystem::path& log_folder = {});

// Whether `error` is an allocation failure (std::bad_alloc, torch's out-of-memory errors).
bool is_out_of_memory(const std::exception& error);

}  // namespace lethe
