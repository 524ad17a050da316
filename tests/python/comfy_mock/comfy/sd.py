"""Mock of comfy/sd.py (ComfyUI @ a125cd84): load_lora_for_models for the diffusion model only
(clip=None, what LoraLoaderModelOnly passes)."""
import logging

import comfy.lora


def load_lora_for_models(model, clip, lora, strength_model, strength_clip):
    """comfy/sd.py:load_lora_for_models without a CLIP: the key map of the MODEL's module
    (comfy.lora.model_lora_keys_unet), the LoRA's patches (comfy.lora.load_lora), then a clone of
    the ModelPatcher with them added at strength_model; a patch whose key the model does not have
    is logged "NOT LOADED <key>". Returns (the clone, None). The input patcher is left as it was.
    Not mirrored: the CLIP side (model_lora_keys_clip, clip.add_patches) and
    comfy/lora_convert.py:convert_lora, which rewrites only a few foreign layouts (BFL control,
    Wan Fun, USO) and leaves kohya/ComfyUI files as they are."""
    if clip is not None:
        raise NotImplementedError("the mock's load_lora_for_models patches a MODEL only (clip=None)")
    key_map = {}
    if model is not None:
        key_map = comfy.lora.model_lora_keys_unet(model.model, key_map)
    loaded = comfy.lora.load_lora(lora, key_map)
    if model is not None:
        new_modelpatcher = model.clone()
        k = new_modelpatcher.add_patches(loaded, strength_model)
    else:
        k = ()
        new_modelpatcher = None
    k = set(k)
    for x in loaded:
        if x not in k:
            logging.warning("NOT LOADED {}".format(x))
    return (new_modelpatcher, None)
