// Splitting the multi-line and comma-separated text of node widgets and command-line values.
#pragma once

#include <string>
#include <vector>

namespace lethe {

// The non-empty lines of `text` ("a\n\nb" -> {"a", "b"}); lines keep their inner blanks.
std::vector<std::string> non_empty_lines(const std::string& text);

// "a, b,c" -> {"a", "b", "c"}: items trimmed of blanks, empty items dropped.
std::vector<std::string> comma_list(const std::string& text);

// "a, b c,,d" -> {"a", "b", "c", "d"}: the words of a list separated by commas or blanks.
std::vector<std::string> word_list(const std::string& text);

}  // namespace lethe
