#include "io/json_config.hpp"

#include "io/atomic_file.hpp"

namespace lethe::io {

json parse_json(const std::string& text, const std::string& where) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // e.byte is the 1-based byte position of the error; report line and column.
    size_t line = 1, column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw Error(str(where, ": invalid JSON at line ", line, ", column ", column, ": ", e.what()));
  }
}

json read_json_file(const std::filesystem::path& path) { return parse_json(read_file(path), path.string()); }

void write_json_file(const std::filesystem::path& path, const json& value) {
  write_file_atomic(path, value.dump(2) + "\n");
}

}  // namespace lethe::io
