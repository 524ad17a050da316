"""Mock of ComfyUI's nodes.py: the core PreviewImage and LoraLoaderModelOnly nodes and the
custom-node loader."""
import importlib.util
import os
import sys

import folder_paths

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
LOADED_MODULE_DIRS = {}
EXTENSION_WEB_DIRS = {}  # pack folder name -> its web folder; server.py serves it as /extensions/<name>/


class PreviewImage:
    """Core PreviewImage: writes IMAGE [B,H,W,C] batches as PNGs in the temp folder."""

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"images": ("IMAGE",)}, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    CATEGORY = "image"

    def save_images(self, images, prompt=None, extra_pnginfo=None):
        import numpy as np
        from PIL import Image

        assert images.dim() == 4 and images.shape[-1] in (1, 3, 4), f"IMAGE must be [B,H,W,C], got {tuple(images.shape)}"
        full, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            "ComfyUI_temp_mock", folder_paths.get_temp_directory(), images.shape[2], images.shape[1]
        )
        results = []
        for image in images:
            array = (255.0 * image.cpu().numpy()).clip(0, 255).astype(np.uint8)
            name = f"{filename}_{counter:05}_.png"
            Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(os.path.join(full, name))
            results.append({"filename": name, "subfolder": subfolder, "type": "temp"})
            counter += 1
        return {"ui": {"images": results}}


def _load_lora_file(path):
    """What comfy/utils.py:load_torch_file(path, safe_load=True) gives for a LoRA file: the
    tensors of a .safetensors/.sft file (safetensors.torch.load_file), else torch.load with
    weights_only=True (its "state_dict" entry when it has one). On the CPU only."""
    if path.lower().endswith((".safetensors", ".sft")):
        import safetensors.torch

        return safetensors.torch.load_file(path, device="cpu")
    import torch

    sd = torch.load(path, map_location="cpu", weights_only=True)
    return sd.get("state_dict", sd)


class LoraLoaderModelOnly:
    """Core LoraLoaderModelOnly (nodes.py: LoraLoaderModelOnly over LoraLoader.load_lora with
    clip=None, strength_clip=0): strength 0 gives the input MODEL back; otherwise the file from
    the loras folder (folder_paths.get_full_path_or_raise; the last file read is kept per node
    instance by its path, as LoraLoader.loaded_lora) patched onto a clone of the MODEL by
    comfy.sd.load_lora_for_models at strength_model. Deviation: the file is read by
    _load_lora_file (safetensors.torch.load_file for .safetensors/.sft) rather than
    comfy.utils.load_torch_file, which the mock's comfy.utils does not have."""

    def __init__(self):
        self.loaded_lora = None

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"model": ("MODEL",),
                             "lora_name": (folder_paths.get_filename_list("loras"),),
                             "strength_model": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_lora_model_only"
    CATEGORY = "loaders"

    def load_lora_model_only(self, model, lora_name, strength_model):
        import comfy.sd

        if strength_model == 0:
            return (model,)
        lora_path = folder_paths.get_full_path_or_raise("loras", lora_name)
        lora = None
        if self.loaded_lora is not None:
            if self.loaded_lora[0] == lora_path:
                lora = self.loaded_lora[1]
            else:
                self.loaded_lora = None
        if lora is None:
            lora = _load_lora_file(lora_path)
            self.loaded_lora = (lora_path, lora)
        model_lora, _ = comfy.sd.load_lora_for_models(model, None, lora, strength_model, 0)
        return (model_lora,)


NODE_CLASS_MAPPINGS["PreviewImage"] = PreviewImage
NODE_DISPLAY_NAME_MAPPINGS["PreviewImage"] = "Preview Image"
# LoraLoaderModelOnly is a core node in ComfyUI, but not registered here yet: test_comfy_pack.py
# takes every name but PreviewImage in NODE_CLASS_MAPPINGS for one of the pack's.
CORE_NODES = set(NODE_CLASS_MAPPINGS)


def load_custom_node(module_path):
    """As ComfyUI's nodes.py:load_custom_node for a folder: import <dir>/__init__.py as a package
    named after its absolute path ("." → "_x_"), register its WEB_DIRECTORY (when set and a
    folder) under the folder's name, then register V1 mappings, core names first."""
    module_name = os.path.basename(module_path)
    spec = importlib.util.spec_from_file_location(
        module_path.replace(".", "_x_"), os.path.join(module_path, "__init__.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_path.replace(".", "_x_")] = module
    spec.loader.exec_module(module)
    LOADED_MODULE_DIRS[spec.name] = os.path.abspath(module_path)
    if getattr(module, "WEB_DIRECTORY", None) is not None:
        web_dir = os.path.abspath(os.path.join(module_path, module.WEB_DIRECTORY))
        if os.path.isdir(web_dir):
            EXTENSION_WEB_DIRS[module_name] = web_dir
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
    if mappings is None:
        raise RuntimeError(f"Skip {module_path} module for custom nodes due to the lack of NODE_CLASS_MAPPINGS.")
    for name, node_class in mappings.items():
        if name not in CORE_NODES:  # a core id is silently skipped
            NODE_CLASS_MAPPINGS[name] = node_class
            node_class.RELATIVE_PYTHON_MODULE = f"custom_nodes.{module_name}"
    NODE_DISPLAY_NAME_MAPPINGS.update(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {}) or {})
    return module
