"""Mock of ComfyUI's server.py, the part that answers GET /object_info: `node_info` as
PromptServer.node_info builds one entry (input, input_order, output, output_is_list,
output_name, name, display_name, description, category, output_node, output_tooltips) and
`object_info()` for every registered class, as JSON would carry it (tuples become lists)."""
import json

import nodes


def node_info(node_class):
    obj_class = nodes.NODE_CLASS_MAPPINGS[node_class]
    input_types = obj_class.INPUT_TYPES()
    info = {
        "input": input_types,
        "input_order": {key: list(value.keys()) for key, value in input_types.items()},
        "output": obj_class.RETURN_TYPES,
        "output_is_list": getattr(obj_class, "OUTPUT_IS_LIST", [False] * len(obj_class.RETURN_TYPES)),
        "output_name": getattr(obj_class, "RETURN_NAMES", obj_class.RETURN_TYPES),
        "name": node_class,
        "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS.get(node_class, node_class),
        "description": getattr(obj_class, "DESCRIPTION", ""),
        "python_module": getattr(obj_class, "RELATIVE_PYTHON_MODULE", "nodes"),
        "category": getattr(obj_class, "CATEGORY", "sd"),
        "output_node": getattr(obj_class, "OUTPUT_NODE", False) is True,
    }
    if hasattr(obj_class, "OUTPUT_TOOLTIPS"):
        info["output_tooltips"] = obj_class.OUTPUT_TOOLTIPS
    return info


def object_info():
    """GET /object_info: every class's node_info, through JSON."""
    return json.loads(json.dumps({name: node_info(name) for name in nodes.NODE_CLASS_MAPPINGS}))
