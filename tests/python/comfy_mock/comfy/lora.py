"""Mock of comfy/lora.py (ComfyUI @ a125cd84) for the patch kinds Lethe makes and for the path
LoraLoaderModelOnly takes.

- calculate_weight: "diff" (a 1-tuple (delta,) or ("diff", (delta,))), "set" and "lora". A diff
  whose shape differs from the weight is logged as "WARNING SHAPE MISMATCH ... WEIGHT NOT MERGED"
  and skipped. "lora" is comfy/weight_adapter/lora.py:LoRAAdapter.calculate_weight for
  v = (up, down, alpha, mid, dora_scale): W += strength * (alpha / rank) * (up @ down) reshaped to
  W's shape (alpha None: scale 1), an up/down that does not fit W logged as
  "ERROR lora <key> <error>" and W left as it was. Not mirrored: the locon mid weight, DoRA,
  reshape_weight, the other adapters (LoHa, LoKr, GLoRA, OFT, BOFT).
- model_lora_keys_unet: the LoRA key -> model key map for a diffusion model.
- load_lora: LoRA file tensors -> {model key: ("lora", v)} for the regular up/down pairs.

The real load_lora returns WeightAdapter objects (LoRAAdapter, whose calculate_weight the real
calculate_weight calls); the mock keeps them as ("lora", v) tuples, the form calculate_weight
dispatched on before comfy/weight_adapter, with the same numbers."""
import logging

import torch

import comfy.utils


def model_lora_keys_unet(model, key_map={}):  # noqa: B006 (the real signature)
    """comfy/lora.py:model_lora_keys_unet, generic and SD-UNet parts. For every model key
    "diffusion_model.<path>.weight": "lora_unet_<path with . as _>" (kohya) and
    "diffusion_model.<path>" (ComfyUI's generic form); any other "diffusion_model." key maps to
    itself. Then, for a model whose model_config.unet_config describes an SD-shaped UNet
    (num_res_blocks; comfy.utils.unet_to_diffusers gives {} otherwise), the diffusers module names:
    "lora_unet_<diffusers path>", "lycoris_<diffusers path>" and the diffusers/PEFT names
    ("<path>" and "unet.<path>", ".to_" as ".processor.to_", ".to_out.0" as ".to_out"), all
    mapped to "diffusion_model.<LDM path>.weight" whether or not the model has that key (as the
    real one: add_patches drops the rest, load_lora_for_models logs them "NOT LOADED").
    A model without model_config (the mock BaseModel) gets the generic part only. Not mirrored:
    the StableCascade, SD3 (mmdit_to_diffusers), Flux (flux_to_diffusers), AuraFlow, HunyuanDiT,
    PixArt, Lumina, Wan, ... branches, which add those families' diffusers names."""
    sd = model.state_dict()
    for k in sd.keys():
        if k.startswith("diffusion_model."):
            if k.endswith(".weight"):
                key_lora = k[len("diffusion_model."):-len(".weight")].replace(".", "_")
                key_map["lora_unet_{}".format(key_lora)] = k
                key_map[k[:-len(".weight")]] = k  # the generic LoRA format
            else:
                key_map[k] = k  # generic, for a key not ending in .weight

    model_config = getattr(model, "model_config", None)
    unet_config = getattr(model_config, "unet_config", None)
    if unet_config is not None:
        diffusers_keys = comfy.utils.unet_to_diffusers(unet_config)
        for k in diffusers_keys:
            if k.endswith(".weight"):
                unet_key = "diffusion_model.{}".format(diffusers_keys[k])
                key_lora = k[:-len(".weight")].replace(".", "_")
                key_map["lora_unet_{}".format(key_lora)] = unet_key
                key_map["lycoris_{}".format(key_lora)] = unet_key  # SimpleTuner's lycoris names
                for prefix in ("", "unet."):  # diffusers / PEFT names
                    name = prefix + k[:-len(".weight")].replace(".to_", ".processor.to_")
                    if name.endswith(".to_out.0"):
                        name = name[:-2]
                    key_map[name] = unet_key
    return key_map


# (up, down) tensor names of the forms mirrored, in the order LoRAAdapter.load tries them
LORA_NAME_FORMS = (
    ("{}.lora_up.weight", "{}.lora_down.weight"),  # regular (kohya, ComfyUI)
    ("{}_lora.up.weight", "{}_lora.down.weight"),  # diffusers
    ("{}.lora_B.weight", "{}.lora_A.weight"),  # diffusers 2 / PEFT
)


def load_lora(lora, to_load, log_missing=True):
    """comfy/lora.py:load_lora for the regular LoRA forms: for each LoRA prefix x of `to_load`
    ({LoRA prefix: model key}, from model_lora_keys_unet), "<x>.alpha" (a number, when present)
    and the first (up, down) pair found among "<x>.lora_up.weight"/"<x>.lora_down.weight",
    "<x>_lora.up.weight"/"<x>_lora.down.weight" and "<x>.lora_B.weight"/"<x>.lora_A.weight" give
    {to_load[x]: ("lora", (up, down, alpha, None, None))}. Every tensor of `lora` not used is
    logged as "lora key not loaded: <name>" (a WARNING) unless log_missing is False. Not
    mirrored: dora_scale, lora_mid, reshape_weight, the other adapters (LoHa, LoKr, GLoRA, OFT,
    BOFT), the norm forms ("<x>.w_norm"/"<x>.b_norm") and the diff/set/bias forms ("<x>.diff",
    "<x>.set_weight", "<x>.diff_b")."""
    patch_dict = {}
    loaded_keys = set()
    for x in to_load:
        alpha_name = "{}.alpha".format(x)
        alpha = None
        if alpha_name in lora.keys():
            alpha = lora[alpha_name].item()
            loaded_keys.add(alpha_name)
        for up_form, down_form in LORA_NAME_FORMS:
            a_name, b_name = up_form.format(x), down_form.format(x)
            if a_name in lora.keys():
                patch_dict[to_load[x]] = ("lora", (lora[a_name], lora[b_name], alpha, None, None))
                loaded_keys.add(a_name)
                loaded_keys.add(b_name)
                break
    if log_missing:
        for x in lora.keys():
            if x not in loaded_keys:
                logging.warning("lora key not loaded: {}".format(x))
    return patch_dict


def _lora_weight(v, weight, key, strength, function, intermediate_dtype):
    """comfy/weight_adapter/lora.py:LoRAAdapter.calculate_weight, without mid, DoRA and reshape."""
    mat1 = v[0].to(weight.device, intermediate_dtype)  # up [out, rank(, 1, 1)]
    mat2 = v[1].to(weight.device, intermediate_dtype)  # down [rank, in(, kh, kw)]
    alpha = v[2] / mat2.shape[0] if v[2] is not None else 1.0
    try:
        lora_diff = torch.mm(mat1.flatten(start_dim=1), mat2.flatten(start_dim=1)).reshape(weight.shape)
        weight += function(((strength * alpha) * lora_diff).type(weight.dtype))
    except Exception as e:
        logging.error("ERROR {} {} {}".format("lora", key, e))
    return weight


def calculate_weight(patches, weight, key, intermediate_dtype=torch.float32, original_weights=None):
    for p in patches:
        strength = p[0]
        v = p[1]
        strength_model = p[2]
        offset = p[3]
        function = p[4]
        if function is None:
            function = lambda a: a  # noqa: E731 (as the real code)

        old_weight = None
        if offset is not None:
            old_weight = weight
            weight = weight.narrow(offset[0], offset[1], offset[2])

        if strength_model != 1.0:
            weight *= strength_model

        if len(v) == 1:
            patch_type = "diff"
        elif len(v) == 2:
            patch_type = v[0]
            v = v[1]

        if patch_type == "diff":
            diff = v[0]
            if strength != 0.0:
                if diff.shape != weight.shape:
                    logging.warning("WARNING SHAPE MISMATCH {} WEIGHT NOT MERGED {} != {}".format(key, diff.shape, weight.shape))
                else:
                    weight += function(strength * diff.to(weight.device, weight.dtype))
        elif patch_type == "set":
            weight.copy_(v[0])
        elif patch_type == "lora":
            weight = _lora_weight(v, weight, key, strength, function, intermediate_dtype or torch.float32)
        else:
            logging.warning("patch type not recognized {} {}".format(patch_type, key))

        if old_weight is not None:
            weight = old_weight

    return weight
