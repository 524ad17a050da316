// Where Lethe writes: every path built from input that Lethe does not control (a filename
// prefix, a node id, a subfolder) is resolved and checked to stay under its output root,
// and numbered names are claimed exclusively, so two writers never share one. A workflow
// prompt is untrusted input (ComfyUI's /prompt is often reachable by others).
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace lethe::io {

// `root`/`relative` for a user-given relative path (a file name prefix with optional folder
// parts, e.g. "lethe/unlearned"). Refused, with an error naming `where`, the value and the
// root: an empty or absolute path, a ".." part, a NUL, and a path whose existing part leads
// outside `root` through a symbolic link.
std::filesystem::path path_inside(const std::filesystem::path& root, const std::string& relative,
                                  const std::string& where);

// Checks that `path` (which need not exist yet) stays inside `root` once the symbolic
// links of its existing part are resolved; `where` names it in the error.
void check_inside(const std::filesystem::path& root, const std::filesystem::path& path, const std::string& where);

// A node id (any string a prompt sends) as one file-name part: letters, digits, '-' and '_'
// stay; anything else becomes '_' and a short hash of the id is appended, so distinct ids
// never map to the same name ("7" -> "7", "a/../x" -> "a____x-1f0c3d2e").
std::string file_name_part(const std::string& id);

// Claims the first free folder of `root`/`stem`, `stem`-2, `stem`-3, ... with mkdir (atomic:
// concurrent claimers get different folders) and returns it.
std::filesystem::path claim_numbered_folder(const std::filesystem::path& root, const std::string& stem);

// Writes a new file `folder`/<prefix>_00001_<suffix> with the first free number, as
// ComfyUI's savers name files: `write(path)` must write exclusively (WriteMode::exclusive)
// and throw FileExists when another writer took the name first; the next number is tried.
// The prefix is checked with path_inside. Returns the path written.
std::filesystem::path write_numbered_file(const std::filesystem::path& folder, const std::string& prefix,
                                          const std::string& suffix, const std::string& where,
                                          const std::function<void(const std::filesystem::path&)>& write);

}  // namespace lethe::io
