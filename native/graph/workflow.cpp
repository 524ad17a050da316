#include "graph/workflow.hpp"

#include <climits>
#include <functional>
#include <optional>
#include <set>

#include "core/error.hpp"
#include "graph/node_registry.hpp"
#include "io/json_config.hpp"

namespace lethe::graph {

using json = nlohmann::json;

bool is_link(const json& value) {
  return value.is_array() && value.size() == 2 && (value[0].is_string() || value[0].is_number_integer()) &&
         value[1].is_number_integer();
}

namespace {

// Checked reads of a workflow document: a wrong type is an error naming the file, the node
// and the field, never a JSON library exception.
std::string id_text(const json& id, const std::string& where) {
  if (id.is_string()) return id.get<std::string>();
  check(id.is_number_integer(), where, ": expected an id (an integer or a string), got ", io::json_excerpt(id));
  return id.is_number_unsigned() ? std::to_string(id.get<uint64_t>()) : std::to_string(id.get<int64_t>());
}

const json& field(const json& object, const char* key, const std::string& where) {
  check(object.is_object(), where, ": expected an object, got ", object.type_name());
  auto found = object.find(key);
  check(found != object.end(), where, ": the field '", key, "' is missing");
  return *found;
}

int64_t integer(const json& value, const std::string& where) {
  check(value.is_number_integer() && (!value.is_number_unsigned() || value.get<uint64_t>() <= INT64_MAX), where,
        ": expected an integer, got ", io::json_excerpt(value));
  return value.get<int64_t>();
}

// A string field that may be absent or of another type (then "").
std::string optional_text(const json& object, const char* key) {
  auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : "";
}

std::string text(const json& value, const std::string& where) {
  check(value.is_string(), where, ": expected a string, got ", io::json_excerpt(value));
  return value.get<std::string>();
}

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
    const std::string node_where = str(where, ": node ", it.key());
    check(node.is_object() && node.contains("class_type") && node["class_type"].is_string(), node_where,
          ": has no class_type (expected {\"class_type\": ..., \"inputs\": {...}})");
    ApiNode out;
    out.id = it.key();
    out.class_type = node["class_type"].get<std::string>();
    if (node.contains("inputs")) {
      check(node["inputs"].is_object(), node_where, " (", out.class_type, "): inputs must be an object, got ",
            node["inputs"].type_name());
      out.inputs = node["inputs"];
      // {"__value__": [...]} is how the API sends a literal list.
      for (auto& [name, value] : out.inputs.items())
        if (value.is_object() && value.contains("__value__")) value = value["__value__"];
    }
    if (node.contains("_meta") && node["_meta"].is_object() && node["_meta"].contains("title"))
      out.title = text(node["_meta"]["title"], node_where + " _meta.title");
    graph.nodes[out.id] = out;
  }
  return graph;
}

// An /object_info entry checked for what the conversion reads: "input" {required, optional}
// of [type, options] specs and "input_order" naming them (ComfyUI has sent it since 2024).
const json& object_info_entry(const json& object_info, const std::string& type, const std::string& where) {
  const json& entry = object_info[type];
  const std::string entry_where = str(where, ": ", type);
  check(entry.is_object() && entry.contains("input") && entry["input"].is_object(), entry_where,
        ": expected an /object_info entry with 'input' and 'input_order', got ", io::json_excerpt(entry));
  check(entry.contains("input_order") && entry["input_order"].is_object(), entry_where,
        ": has no 'input_order' (expected the object ComfyUI's /object_info sends; save it from ComfyUI 0.3 or newer)");
  for (const char* group : {"required", "optional"}) {
    const json empty = json::object();
    const json& specs = entry["input"].contains(group) ? entry["input"][group] : empty;
    check(specs.is_object(), entry_where, ": input.", group, " must be an object, got ", specs.type_name());
    if (!entry["input_order"].contains(group)) continue;
    const json& order = entry["input_order"][group];
    check(order.is_array(), entry_where, ": input_order.", group, " must be a list of input names, got ", order.type_name());
    for (const json& name : order) {
      check(name.is_string() && specs.contains(name.get<std::string>()), entry_where, ": input_order.", group,
            " names ", io::json_excerpt(name), ", which is not in input.", group);
      const json& spec = specs[name.get<std::string>()];
      check(spec.is_array() && !spec.empty() && (spec[0].is_string() || spec[0].is_array()) &&
                (spec.size() == 1 || spec[1].is_object()),
            entry_where, ": input '", name.get<std::string>(), "': expected [type, {options}], got ", io::json_excerpt(spec));
    }
  }
  return entry;
}

// Maps a UI node's widgets_values and links onto the inputs of its schema (in /object_info
// shape: Lethe's own or one from ComfyUI) as the frontend does; a widget missing from an older
// save keeps its default.
void map_inputs(const json& schema, const json& widgets, const std::map<std::string, std::optional<Link>>& connected,
                ApiNode& out, const std::string& node_where) {
  const json layout = widgets_values_layout(schema);
  std::map<std::string, size_t> slot;  // widget name -> its position in widgets_values
  for (size_t i = 0; i < layout.size(); ++i)
    if (!layout[i].is_null()) slot[layout[i].get<std::string>()] = i;
  const bool positional = widgets.is_array();
  std::set<std::string> names;
  for (const char* group : {"required", "optional"}) {
    for (const json& name_json : schema["input_order"].value(group, json::array())) {
      const std::string name = name_json.get<std::string>();
      names.insert(name);
      const json& spec = schema["input"][group][name];
      const auto link = connected.find(name);
      const bool linked = link != connected.end() && link->second.has_value();
      if (linked) {
        out.inputs[name] = json::array({link->second->origin, link->second->origin_slot});
        continue;
      }
      if (!slot.count(name)) continue;  // a socket without a link
      json value;
      if (positional && slot.at(name) < widgets.size()) {
        value = widgets[slot.at(name)];
      } else if (positional) {
        value = spec.size() > 1 ? spec[1].value("default", json()) : json();  // saved before this widget existed
      } else if (widgets.contains(name)) {
        value = widgets[name];
      }
      if (!value.is_null()) out.inputs[name] = value;
    }
  }
  for (const auto& [name, link] : connected)
    check(names.count(name) > 0, node_where, " has a link into '", name, "', which is not an input of ", out.class_type);
}

ApiGraph parse_ui(const json& document, const std::string& where, const json* object_info,
                 const std::string& object_info_where) {
  ApiGraph graph;
  const json& version = document.contains("version") ? document["version"] : json(0.4);
  graph.format = version.is_number() && version.get<double>() >= 1.0 ? "ui-1" : "ui-0.4";
  check(document.contains("nodes") && document["nodes"].is_array(), where, ": UI workflow has no 'nodes' array");

  std::map<int64_t, Link> links;
  if (document.contains("links")) {
    check(document["links"].is_array(), where, ": 'links' must be an array, got ", document["links"].type_name());
    for (size_t i = 0; i < document["links"].size(); ++i) {
      const json& link = document["links"][i];
      const std::string link_where = str(where, ": links[", i, "]");
      if (link.is_array()) {  // 0.4: [id, origin, origin_slot, target, target_slot, type]
        check(link.size() >= 6, link_where, ": expected [id, origin, origin_slot, target, target_slot, type], got ",
              io::json_excerpt(link));
        links[integer(link[0], link_where + " id")] = {id_text(link[1], link_where + " origin"),
                                                       integer(link[2], link_where + " origin_slot"),
                                                       link[5].is_string() ? link[5].get<std::string>() : ""};
      } else {  // 1: {id, origin_id, origin_slot, target_id, target_slot, type}
        const json& type = link.is_object() && link.contains("type") ? link["type"] : json("");
        links[integer(field(link, "id", link_where), link_where + " id")] = {
            id_text(field(link, "origin_id", link_where), link_where + " origin_id"),
            integer(field(link, "origin_slot", link_where), link_where + " origin_slot"),
            type.is_string() ? type.get<std::string>() : ""};
      }
    }
  }

  std::map<std::string, const json*> by_id;
  for (size_t i = 0; i < document["nodes"].size(); ++i) {
    const json& node = document["nodes"][i];
    const std::string node_where = str(where, ": nodes[", i, "]");
    const std::string id = id_text(field(node, "id", node_where), node_where + " id");
    check(by_id.emplace(id, &node).second, where, ": two nodes have the id ", id);
    text(field(node, "type", str(where, ": node ", id)), str(where, ": node ", id, " type"));
  }
  auto node_type = [](const json& node) { return node["type"].get<std::string>(); };
  auto node_mode = [&](const json& node, const std::string& node_where) {
    return node.contains("mode") && !node["mode"].is_null() ? integer(node["mode"], node_where + " mode") : 0;
  };
  auto node_inputs = [&](const json& node, const std::string& node_where) -> const json& {
    static const json none = json::array();
    if (!node.contains("inputs") || node["inputs"].is_null()) return none;
    check(node["inputs"].is_array(), node_where, ": 'inputs' must be an array, got ", node["inputs"].type_name());
    for (const json& input : node["inputs"]) {
      check(input.is_object(), node_where, ": each of 'inputs' must be an object, got ", io::json_excerpt(input));
      if (input.contains("link") && !input["link"].is_null()) integer(input["link"], node_where + " input link");
    }
    return node["inputs"];
  };

  // Follows a link through reroutes and bypassed nodes to a real producer; nullopt for a
  // muted/primitive source (the target then keeps its widget value) or a dead end.
  std::function<std::optional<Link>(const Link&, int, const std::string&)> resolve =
      [&](const Link& link, int depth, const std::string& link_where) -> std::optional<Link> {
    check(depth < 64, where, ": links loop through reroutes or bypassed nodes");
    auto found = by_id.find(link.origin);
    check(found != by_id.end(), link_where, " comes from node ", link.origin, ", which is not in the workflow");
    const json& origin = *found->second;
    const std::string type = node_type(origin);
    const std::string origin_where = str(where, ": node ", link.origin, " (", type, ")");
    const int64_t mode = node_mode(origin, origin_where);
    if (type == "PrimitiveNode" || type == "Note" || type == "MarkdownNote") return std::nullopt;
    if (type == "Reroute" || mode == 4) {
      // Pass through: the input of a reroute, or a bypassed node's first input of the output's type.
      for (const json& input : node_inputs(origin, origin_where)) {
        if (!input.contains("link") || input["link"].is_null()) continue;
        const std::string input_type = optional_text(input, "type");
        if (type == "Reroute" || input_type == link.type || link.type.empty()) {
          const int64_t id = input["link"].get<int64_t>();
          auto upstream = links.find(id);
          check(upstream != links.end(), origin_where, " refers to link ", id, ", which does not exist");
          return resolve(upstream->second, depth + 1, str(origin_where, " link ", id));
        }
      }
      return std::nullopt;
    }
    if (mode == 2) return std::nullopt;  // muted
    return link;
  };

  for (const json& node : document["nodes"]) {
    const std::string id = id_text(node["id"], where);
    const std::string type = node_type(node);
    const std::string node_where = str(where, ": node ", id, " (", type, ")");
    const int64_t mode = node_mode(node, node_where);
    if (is_virtual(type) || mode == 2 || mode == 4) continue;
    ApiNode out;
    out.id = id;
    out.class_type = type;
    if (node.contains("title") && !node["title"].is_null()) out.title = text(node["title"], node_where + " title");
    const json widgets = node.contains("widgets_values") && !node["widgets_values"].is_null() ? node["widgets_values"]
                                                                                              : json::array();
    check(widgets.is_array() || widgets.is_object(), node_where,
          " widgets_values: expected a list of widget values (or an object by widget name), got ", io::json_excerpt(widgets));
    std::map<std::string, std::optional<Link>> connected;
    for (const json& input : node_inputs(node, node_where)) {
      if (!input.contains("link") || input["link"].is_null()) continue;
      const std::string name = text(field(input, "name", node_where + " input"), node_where + " input name");
      const int64_t link_id = input["link"].get<int64_t>();
      auto link = links.find(link_id);
      check(link != links.end(), node_where, " input '", name, "' refers to link ", link_id, ", which does not exist");
      connected[name] = resolve(link->second, 0, str(node_where, " input '", name, "': link ", link_id));
    }
    json own_schema;
    const json* schema = nullptr;
    if (has_node(type)) {
      own_schema = schema_json(node_schema(type));
      schema = &own_schema;
    } else if (object_info != nullptr && object_info->contains(type)) {
      schema = &object_info_entry(*object_info, type, object_info_where);
    }
    if (schema == nullptr) {
      out.schema_known = false;
      out.raw_widgets = widgets;  // validation reports the node; its widgets cannot be mapped without a schema
    } else {
      map_inputs(*schema, widgets, connected, out, node_where);
    }
    graph.nodes[id] = out;
  }
  return graph;
}

}  // namespace

ApiGraph parse_workflow(const json& document, const std::string& where, const json* object_info,
                       const std::string& object_info_where) {
  check(object_info == nullptr || object_info->is_object(), object_info_where,
        ": expected ComfyUI's /object_info (an object keyed by node class), got ",
        object_info == nullptr ? "" : object_info->type_name());
  check(document.is_object(), where, ": a workflow must be a JSON object, got ", document.type_name());
  if (document.contains("nodes") && document["nodes"].is_array()) return parse_ui(document, where, object_info, object_info_where);
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

void check_schemas_known(const ApiGraph& graph, const std::string& where) {
  std::string unknown;
  std::set<std::string> classes;
  for (const auto& [id, node] : graph.nodes) {
    if (node.schema_known) continue;
    unknown += str(unknown.empty() ? "" : ", ", "node ", id, " (", node.class_type, ")");
    classes.insert(node.class_type);
  }
  check(unknown.empty(), where, ": ", unknown, classes.size() == 1 ? " is" : " are",
        " not Lethe's, and their widgets map onto inputs only through their schemas: save /object_info from your "
        "ComfyUI (e.g. curl http://127.0.0.1:8188/object_info > object_info.json) and pass --object-info "
        "object_info.json (it must have ", join(classes), ")");
}

}  // namespace lethe::graph
