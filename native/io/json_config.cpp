#include "io/json_config.hpp"

#include "io/atomic_file.hpp"

namespace lethe::io {

namespace {

// One open object or array while scanning: the key or index being read inside it.
struct Frame {
  bool object = false;
  bool expecting_key = true;
  std::string key;
  int64_t index = 0;
};

std::string json_path(const std::vector<Frame>& frames) {
  std::string path;
  for (size_t i = 0; i + 1 < frames.size(); ++i) {  // the innermost frame is the one that went too deep
    const Frame& frame = frames[i];
    if (frame.object) {
      path += (path.empty() ? "" : ".") + frame.key;
    } else {
      path += str("[", frame.index, "]");
    }
  }
  return path.empty() ? "(the top level)" : path;
}

// Checks nesting depth in one linear pass over the text (strings skipped), before the
// recursive parser sees it. Malformed text is left to the parser to report.
void check_depth(const std::string& text, const std::string& where) {
  std::vector<Frame> frames;
  bool in_string = false, escaped = false, collecting_key = false;
  std::string string_value;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
        if (collecting_key) frames.back().key = string_value;
        collecting_key = false;
        continue;
      }
      if (collecting_key && string_value.size() < 64) string_value += c;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        collecting_key = !frames.empty() && frames.back().object && frames.back().expecting_key;
        string_value.clear();
        break;
      case '{':
      case '[':
        frames.push_back({c == '{', true, "", 0});
        if (static_cast<int>(frames.size()) > kMaxJsonDepth)
          throw Error(str(where, ": JSON nested deeper than ", kMaxJsonDepth, " levels at '", json_path(frames),
                          "' (expected a workflow, config or header of ordinary depth)"));
        break;
      case '}':
      case ']':
        if (!frames.empty()) frames.pop_back();
        break;
      case ',':
        if (!frames.empty()) {
          if (frames.back().object) {
            frames.back().expecting_key = true;
          } else {
            ++frames.back().index;
          }
        }
        break;
      case ':':
        if (!frames.empty() && frames.back().object) frames.back().expecting_key = false;
        break;
      default:
        break;
    }
  }
}

}  // namespace

std::string json_excerpt(const json& value, size_t limit) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > limit) text = text.substr(0, limit) + "...";
  return text;
}

std::string json_error_text(const std::exception& error) {
  std::string text = error.what();
  if (text.rfind("[json.exception.", 0) == 0) {
    const size_t close = text.find("] ");
    if (close != std::string::npos) text = text.substr(close + 2);
  }
  return text;
}

json parse_json(const std::string& text, const std::string& where) {
  check(text.size() <= kMaxJsonBytes, where, ": JSON document of ", text.size(), " bytes, expected at most ",
        kMaxJsonBytes);
  check_depth(text, where);
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
    std::string reason = json_error_text(e);
    const size_t colon = reason.find(": ");  // "parse error at line 1, column 2: <reason>"
    if (reason.rfind("parse error", 0) == 0 && colon != std::string::npos) reason = reason.substr(colon + 2);
    throw Error(str(where, ": invalid JSON at line ", line, ", column ", column, ": ", reason));
  } catch (const json::exception& e) {
    // Valid syntax the library still refuses, e.g. a number beyond a double's range (1e400).
    throw Error(str(where, ": JSON that cannot be read: ", json_error_text(e)));
  }
}

json read_json_file(const std::filesystem::path& path) { return parse_json(read_file(path), path.string()); }

void write_json_file(const std::filesystem::path& path, const json& value) {
  write_file_atomic(path, value.dump(2) + "\n");
}

}  // namespace lethe::io
