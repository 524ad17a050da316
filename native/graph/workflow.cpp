#include "graph/workflow.hpp"

#include <set>

#include "core/error.hpp"
#include "graph/node_registry.hpp"

namespace lethe::graph {

using json = nlohmann::json;

bool is_link(const json& value) {
  return value.is_array() && value.size() == 2 && (value[0].is_string() || value[0].is_number_integer()) &&
         value[1].is_number_integer();
}

namespace {

std::string id_text(const json& id) { return id.is_string() ? id.get<std::string>() : std::to_string(id.get<int64_t>()); }

bool is_virtual(const std::string& type) {
  return type == "Note" || type == "MarkdownNote" || type == "Reroute" || type == "PrimitiveNode";
}

struct Link {
  std::string origin;
  int64_t origin_slot = 0;
  std::string type;
};

ApiGraph parse_api(const json& prompt, const std::string& where) {
  ApiGraph graph;
  graph.format = "api";
  for (auto it = prompt.begin(); it != prompt.end(); ++it) {
    const json& node = it.value();
    check(node.is_object() && node.contains("class_type") && node["class_type"].is_string(), where, ": node '", it.key(),
          "' has no class_type");
    ApiNode out;
    out.id = it.key();
    out.class_type = node["class_type"].get<std::string>();
    if (node.contains("inputs")) {
      check(node["inputs"].is_object(), where, ": node ", it.key(), " (", out.class_type, "): inputs must be an object");
      out.inputs = node["inputs"];
      // {"__value__": [...]} is how the API sends a literal list.
      for (auto& [name, value] : out.inputs.items())
        if (value.is_object() && value.contains("__value__")) value = value["__value__"];
    }
    if (node.contains("_meta") && node["_meta"].contains("title")) out.title = node["_meta"]["title"].get<std::string>();
    graph.nodes[out.id] = out;
  }
  return graph;
}

ApiGraph parse_ui(const json& document, const std::string& where) {
  ApiGraph graph;
  const json& version = document.contains("version") ? document["version"] : json(0.4);
  graph.format = version.is_number() && version.get<double>() >= 1.0 ? "ui-1" : "ui-0.4";
  check(document.contains("nodes") && document["nodes"].is_array(), where, ": UI workflow has no 'nodes' array");

  std::map<int64_t, Link> links;
  std::map<int64_t, std::pair<std::string, int64_t>> link_targets;
  if (document.contains("links")) {
    for (const json& link : document["links"]) {
      if (link.is_array()) {  // 0.4: [id, origin, origin_slot, target, target_slot, type]
        check(link.size() >= 6, where, ": malformed link ", link.dump());
        links[link[0].get<int64_t>()] = {id_text(link[1]), link[2].get<int64_t>(), link[5].is_string() ? link[5].get<std::string>() : ""};
      } else {  // 1: {id, origin_id, origin_slot, target_id, target_slot, type}
        links[link.at("id").get<int64_t>()] = {id_text(link.at("origin_id")), link.at("origin_slot").get<int64_t>(),
                                                link.value("type", json("")).is_string() ? link.value("type", std::string()) : ""};
      }
    }
  }

  std::map<std::string, const json*> by_id;
  for (const json& node : document["nodes"]) by_id[id_text(node.at("id"))] = &node;

  // Follows a link through reroutes and bypassed nodes to a real producer; nullopt for a
  // muted/primitive source (the target then keeps its widget value) or a dead end.
  std::function<std::optional<Link>(const Link&, int)> resolve = [&](const Link& link, int depth) -> std::optional<Link> {
    check(depth < 64, where, ": links loop through reroutes or bypassed nodes");
    auto found = by_id.find(link.origin);
    if (found == by_id.end()) return std::nullopt;  // link to a removed node: dropped, as the frontend does
    const json& origin = *found->second;
    const std::string type = origin.at("type").get<std::string>();
    const int64_t mode = origin.value("mode", 0);
    if (type == "PrimitiveNode" || type == "Note" || type == "MarkdownNote") return std::nullopt;
    if (type == "Reroute" || mode == 4) {
      // Pass through: the input of a reroute, or a bypassed node's first input of the output's type.
      const json& inputs = origin.value("inputs", json::array());
      for (const json& input : inputs) {
        if (!input.contains("link") || input["link"].is_null()) continue;
        const std::string input_type = input.value("type", std::string());
        if (type == "Reroute" || input_type == link.type || link.type.empty()) {
          auto upstream = links.find(input["link"].get<int64_t>());
          if (upstream != links.end()) return resolve(upstream->second, depth + 1);
        }
      }
      return std::nullopt;
    }
    if (mode == 2) return std::nullopt;  // muted
    return link;
  };

  for (const json& node : document["nodes"]) {
    const std::string id = id_text(node.at("id"));
    const std::string type = node.at("type").get<std::string>();
    const int64_t mode = node.value("mode", 0);
    if (is_virtual(type) || mode == 2 || mode == 4) continue;
    ApiNode out;
    out.id = id;
    out.class_type = type;
    out.title = node.value("title", std::string());
    const json widgets = node.contains("widgets_values") ? node["widgets_values"] : json::array();
    std::map<std::string, std::optional<Link>> connected;
    for (const json& input : node.value("inputs", json::array())) {
      if (!input.contains("link") || input["link"].is_null()) continue;
      auto link = links.find(input["link"].get<int64_t>());
      check(link != links.end(), where, ": node ", id, " (", type, ") input '", input.value("name", std::string()),
            "' refers to link ", input["link"].dump(), ", which does not exist");
      connected[input.at("name").get<std::string>()] = resolve(link->second, 0);
    }
    if (!has_node(type)) {
      out.raw_widgets = widgets;  // validation reports the node; its widgets cannot be mapped without a schema
    } else {
      const NodeSchema& schema = node_schema(type);
      size_t position = 0;
      const bool positional = widgets.is_array();
      for (const InputSpec& spec : schema.inputs) {
        auto link = connected.find(spec.name);
        if (spec.is_widget()) {
          json value;
          if (positional && position < widgets.size()) {
            value = widgets[position++];
            if (spec.seed) ++position;  // the frontend's control_after_generate value
          } else if (positional) {
            // Saved before this widget existed: like the frontend, it keeps its default.
            value = spec.default_value;
          } else if (widgets.contains(spec.name)) {
            value = widgets[spec.name];
          }
          if (link != connected.end() && link->second) {
            out.inputs[spec.name] = json::array({link->second->origin, link->second->origin_slot});
          } else if (!value.is_null()) {
            out.inputs[spec.name] = value;
          }
        } else if (link != connected.end() && link->second) {
          out.inputs[spec.name] = json::array({link->second->origin, link->second->origin_slot});
        }
      }
      for (const auto& [name, link] : connected)
        check(schema.input(name) != nullptr, where, ": node ", id, " (", type, ") has a link into '", name,
              "', which is not an input of ", type);
    }
    graph.nodes[id] = out;
  }
  return graph;
}

}  // namespace

ApiGraph parse_workflow(const json& document, const std::string& where) {
  check(document.is_object(), where, ": a workflow must be a JSON object, got ", document.type_name());
  if (document.contains("nodes") && document["nodes"].is_array()) return parse_ui(document, where);
  if (document.contains("prompt") && document["prompt"].is_object()) return parse_api(document["prompt"], where);
  bool api = !document.empty();
  for (auto it = document.begin(); it != document.end(); ++it) api = api && it.value().is_object() && it.value().contains("class_type");
  check(api, where, ": not a ComfyUI workflow (expected the UI format with 'nodes' and 'links', or the API format "
                    "{\"id\": {\"class_type\": ..., \"inputs\": ...}})");
  return parse_api(document, where);
}

json to_api_json(const ApiGraph& graph) {
  json out = json::object();
  for (const auto& [id, node] : graph.nodes) {
    out[id] = {{"class_type", node.class_type}, {"inputs", node.inputs}};
    if (!node.title.empty()) out[id]["_meta"] = {{"title", node.title}};
  }
  return out;
}

void apply_override(ApiGraph& graph, const std::string& assignment) {
  const auto equals = assignment.find('=');
  const auto dot = assignment.find('.');
  check(equals != std::string::npos && dot != std::string::npos && dot < equals,
        "--set expects NODE_ID.INPUT=VALUE, got '", assignment, "'");
  const std::string id = assignment.substr(0, dot), input = assignment.substr(dot + 1, equals - dot - 1);
  const std::string text = assignment.substr(equals + 1);
  auto found = graph.nodes.find(id);
  std::vector<std::string> ids;
  for (const auto& [node_id, node] : graph.nodes) ids.push_back(node_id);
  check(found != graph.nodes.end(), "--set ", assignment, ": no node with id ", id, " (node ids: ", join(ids), ")");
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception&) {
    value = text;
  }
  if (has_node(found->second.class_type)) {
    const NodeSchema& schema = node_schema(found->second.class_type);
    std::vector<std::string> names;
    for (const auto& spec : schema.inputs) names.push_back(spec.name);
    check(schema.input(input) != nullptr, "--set ", assignment, ": node ", id, " (", found->second.class_type,
          ") has no input '", input, "'; inputs: ", join(names));
    if (schema.input(input)->type == "STRING" && !value.is_string()) value = text;
  }
  found->second.inputs[input] = value;
}

}  // namespace lethe::graph
