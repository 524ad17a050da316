// JSON configs read into plain structs with defaults.
//
// A config struct lists its fields once, in a `visit` member:
//
//   struct TrainerConfig {
//     int64_t steps = 100;
//     double learning_rate = 1e-4;
//     template <typename Visitor> void visit(Visitor& v) {
//       v("steps", steps);
//       v("learning_rate", learning_rate);
//     }
//     void validate(const std::string& where) const;   // optional: range checks
//   };
//
// read_config<TrainerConfig>(json, "run.json: trainer") starts from the defaults, reads
// the keys present, rejects unknown keys (naming the known ones) and wrong JSON types,
// then calls validate(where) if the struct has one. to_json(config) writes every field,
// which is how a run records its resolved configuration.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace lethe::io {

using json = nlohmann::json;

// Limits on JSON documents read from users (workflows, configs, file headers): a deeply
// nested document would crash the recursive printer and destructor (a stack overflow) and
// grow quadratically when pretty-printed, so nesting and size are checked before parsing.
inline constexpr int kMaxJsonDepth = 64;
inline constexpr size_t kMaxJsonBytes = size_t{256} << 20;

// Parses a JSON document; errors name `where` (usually a file) and the parser's position,
// or the JSON path ("nodes[3].widgets_values[0]") where nesting exceeds kMaxJsonDepth.
json parse_json(const std::string& text, const std::string& where);
// A JSON value as shown in a message: its text, cut to about `limit` characters ("...").
std::string json_excerpt(const json& value, size_t limit = 80);
// The message of a nlohmann::json exception without its "[json.exception.x.NNN] " tag.
std::string json_error_text(const std::exception& error);
json read_json_file(const std::filesystem::path& path);
// Writes `value` pretty-printed (2-space indent) atomically.
void write_json_file(const std::filesystem::path& path, const json& value);

namespace detail {

template <typename T, typename = void>
struct HasVisit : std::false_type {};
struct NullVisitor {
  template <typename F>
  void operator()(const char*, F&) {}
};
template <typename T>
struct HasVisit<T, std::void_t<decltype(std::declval<T&>().visit(std::declval<NullVisitor&>()))>>
    : std::true_type {};

template <typename T, typename = void>
struct HasValidate : std::false_type {};
template <typename T>
struct HasValidate<T, std::void_t<decltype(std::declval<const T&>().validate(std::string()))>>
    : std::true_type {};

template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};
template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};
template <typename T>
struct IsStringMap : std::false_type {};
template <typename T>
struct IsStringMap<std::map<std::string, T>> : std::true_type {};

template <typename T>
void read_value(const json& value, T& out, const std::string& where);

class Reader {
 public:
  Reader(const json& object, std::string where) : object_(object), where_(std::move(where)) {}
  template <typename T>
  void operator()(const char* key, T& field) {
    known_.push_back(key);
    auto found = object_.find(key);
    if (found != object_.end()) read_value(*found, field, where_ + "." + key);
  }
  void reject_unknown_keys() const {
    for (auto it = object_.begin(); it != object_.end(); ++it) {
      bool is_known = false;
      for (const std::string& name : known_) is_known = is_known || name == it.key();
      check(is_known, where_, ": unknown key '", it.key(), "'; known keys: ", join(known_));
    }
  }

 private:
  const json& object_;
  std::string where_;
  std::vector<std::string> known_;
};

template <typename T>
void read_value(const json& value, T& out, const std::string& where) {
  if constexpr (std::is_same_v<T, bool>) {
    check(value.is_boolean(), where, ": expected true or false, got ", value.dump());
    out = value.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    check(value.is_number_integer(), where, ": expected an integer, got ", value.dump());
    if constexpr (std::is_unsigned_v<T>) {
      check(value.is_number_unsigned(), where, ": expected a non-negative integer, got ", value.dump());
    }
    out = value.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    check(value.is_number(), where, ": expected a number, got ", value.dump());
    out = value.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    check(value.is_string(), where, ": expected a string, got ", value.dump());
    out = value.get<std::string>();
  } else if constexpr (std::is_same_v<T, json>) {
    out = value;
  } else if constexpr (IsOptional<T>::value) {
    if (value.is_null()) {
      out.reset();
    } else {
      typename T::value_type inner{};
      if (out.has_value()) inner = *out;
      read_value(value, inner, where);
      out = std::move(inner);
    }
  } else if constexpr (IsVector<T>::value) {
    check(value.is_array(), where, ": expected an array, got ", value.dump());
    T items;
    for (size_t i = 0; i < value.size(); ++i) {
      typename T::value_type item{};
      read_value(value[i], item, str(where, "[", i, "]"));
      items.push_back(std::move(item));
    }
    out = std::move(items);
  } else if constexpr (IsStringMap<T>::value) {
    check(value.is_object(), where, ": expected an object, got ", value.dump());
    T items;
    for (auto it = value.begin(); it != value.end(); ++it) {
      typename T::mapped_type item{};
      read_value(it.value(), item, str(where, ".", it.key()));
      items.emplace(it.key(), std::move(item));
    }
    out = std::move(items);
  } else if constexpr (HasVisit<T>::value) {
    check(value.is_object(), where, ": expected an object, got ", value.dump());
    Reader reader(value, where);
    out.visit(reader);
    reader.reject_unknown_keys();
    if constexpr (HasValidate<T>::value) out.validate(where);
  } else {
    static_assert(HasVisit<T>::value, "unsupported config field type");
  }
}

template <typename T>
json write_value(const T& value);

class Writer {
 public:
  template <typename T>
  void operator()(const char* key, T& field) {
    object_[key] = write_value(field);
  }
  json take() { return std::move(object_); }

 private:
  json object_ = json::object();
};

template <typename T>
json write_value(const T& value) {
  if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, std::string> || std::is_same_v<T, json>) {
    return json(value);
  } else if constexpr (IsOptional<T>::value) {
    return value.has_value() ? write_value(*value) : json(nullptr);
  } else if constexpr (IsVector<T>::value) {
    json items = json::array();
    for (const auto& item : value) items.push_back(write_value(item));
    return items;
  } else if constexpr (IsStringMap<T>::value) {
    json items = json::object();
    for (const auto& [key, item] : value) items[key] = write_value(item);
    return items;
  } else {
    Writer writer;
    const_cast<T&>(value).visit(writer);  // visit only reads through the writer
    return writer.take();
  }
}

}  // namespace detail

// Reads a config struct from a JSON object (see the header comment).
template <typename T>
T read_config(const json& value, const std::string& where) {
  T config{};
  detail::read_value(value, config, where);
  return config;
}

// Reads over an existing config: keys present in `value` replace the fields of `base`.
template <typename T>
T merge_config(T base, const json& value, const std::string& where) {
  detail::read_value(value, base, where);
  return base;
}

template <typename T>
json to_json(const T& config) {
  return detail::write_value(config);
}

namespace detail {
struct KeyCollector {
  std::vector<std::string> keys;
  template <typename F>
  void operator()(const char* key, F&) {
    keys.push_back(key);
  }
};
}  // namespace detail

// The names of a config struct's fields, in declaration order.
template <typename T>
std::vector<std::string> config_keys() {
  detail::KeyCollector collector;
  T config{};
  config.visit(collector);
  return collector.keys;
}

}  // namespace lethe::io
