#include "core/text.hpp"

#include <sstream>

namespace lethe {

std::vector<std::string> non_empty_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream stream(text);
  std::string line;
  while (std::getline(stream, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

std::vector<std::string> comma_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    const size_t first = item.find_first_not_of(" \t\n"), last = item.find_last_not_of(" \t\n");
    if (first != std::string::npos) items.push_back(item.substr(first, last - first + 1));
  }
  return items;
}

std::vector<std::string> word_list(const std::string& text) {
  std::vector<std::string> words;
  for (const std::string& item : comma_list(text)) {
    std::stringstream stream(item);
    for (std::string word; stream >> word;) words.push_back(word);
  }
  return words;
}

}  // namespace lethe
