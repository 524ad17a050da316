"""Mock of comfy/lora.py:calculate_weight (ComfyUI @ a125cd84) for the patch kinds Lethe makes:
"diff" (a 1-tuple (delta,) or ("diff", (delta,))) and "set". A diff whose shape differs from the
weight is logged as "WARNING SHAPE MISMATCH ... WEIGHT NOT MERGED" and skipped."""
import logging


def calculate_weight(patches, weight, key, intermediate_dtype=None, original_weights=None):
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
        else:
            logging.warning("patch type not recognized {} {}".format(patch_type, key))

        if old_weight is not None:
            weight = old_weight

    return weight
