#include "core/failure.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <new>

#include <c10/util/Exception.h>

#include "core/error.hpp"
#include "core/runtime.hpp"

namespace lethe {

namespace fs = std::filesystem;

fs::path log_directory() {
  if (const char* dir = std::getenv("LETHE_LOG_DIR"); dir != nullptr && *dir != '\0') return dir;
  if (const char* state = std::getenv("XDG_STATE_HOME"); state != nullptr && *state != '\0')
    return fs::path(state) / "lethe" / "logs";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return fs::path(home) / ".local" / "state" / "lethe" / "logs";
  return fs::temp_directory_path() / "lethe-logs";
}

bool is_out_of_memory(const std::exception& error) {
  if (dynamic_cast<const std::bad_alloc*>(&error) != nullptr) return true;
  if (dynamic_cast<const c10::OutOfMemoryError*>(&error) != nullptr) return true;
  const std::string text = error.what();
  return text.find("can't allocate memory") != std::string::npos ||
         text.find("DefaultCPUAllocator: not enough memory") != std::string::npos;
}

std::string user_message(const std::exception& error, const std::string& doing, const fs::path& log_folder) {
  if (dynamic_cast<const Error*>(&error) != nullptr) return error.what();
  static std::atomic<int> counter{0};
  const fs::path folder = log_folder.empty() ? log_directory() : log_folder;
  const fs::path log = folder / str("lethe-error-", timestamp(), "-", ::getpid(), "-", counter++, ".log");
  std::string where_logged;
  try {
    fs::create_directories(folder);
    std::ofstream out(log);
    out << "lethe " << build_info() << "\nwhile: " << doing << "\n" << error.what() << "\n";
    where_logged = out.good() ? str("; details in '", log.string(), "'") : "";
  } catch (const std::exception&) {
    where_logged = "";  // the log is a courtesy: never let it hide the failure itself
  }
  if (is_out_of_memory(error))
    return str(doing, ": out of memory: this work needs more memory than the machine has free; lower the batch "
               "size, the number of samples or the image size", where_logged);
  return str(doing, ": internal error (a bug in Lethe, not a problem with your input)", where_logged);
}

}  // namespace lethe
