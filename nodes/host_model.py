"""A ComfyUI MODEL (ModelPatcher) as Lethe's native trainer drives it (the "host path").

Native code asks three things through callbacks (python_bridge/bind_host.cpp):
- describe(): the model's linear weights (keys and shapes), its noise schedule as
  alphas_cumprod = 1 / (1 + sigma^2) from ComfyUI's model_sampling, and its device;
- predict(x_t, t, context, adapters): eps for DDPM x_t at integer t, through the model's own
  apply_model (ComfyUI's sigma convention: x = x_t * sqrt(sigma^2 + 1), eps = (x - x0_hat) / sigma),
  with or without the LoRA adapters;
- attach(adapters): adds y += scale * up(down(x)) to the named linear layers (forward hooks on the
  model's own modules), or removes them.

ComfyUI runs nodes under torch.inference_mode(), so the weights it loaded can be inference
tensors, which autograd cannot save for backward. While adapters are attached, such weights
are swapped for ordinary copies (and every base weight has requires_grad off); detaching
puts the originals back, so the incoming MODEL is as it was. Only epsilon-style models with a
discrete schedule (SD1.x/2.x, SDXL, v-prediction variants) are supported; flow-matching
models (SD3, Flux) are refused with a message.
"""

import torch


class HostModelAdapter:
    def __init__(self, model, where):
        self.patcher = model
        self.where = where
        self.enabled = False
        self.hooks = []
        self.swapped = []  # (module, name, kind, original) to restore
        self.sigmas = None
        self.device = None

    # ---- describe ----
    def _sampling(self):
        sampling = self.patcher.get_model_object("model_sampling")
        kinds = {cls.__name__ for cls in type(sampling).__mro__}
        if "EPS" not in kinds or kinds & {"IMG_TO_IMG", "CONST", "COSMOS_RFLOW"} or not hasattr(sampling, "sigmas") \
                or float(getattr(sampling, "sigma_data", 1.0)) != 1.0:
            raise ValueError(f"{self.where}: this MODEL's sampling ({type(sampling).__name__}) is not an epsilon/v-prediction "
                             "model with a discrete noise schedule; Lethe's host path supports SD1.x/2.x/SDXL-style "
                             "models (flow-matching models such as SD3 or Flux are not supported yet)")
        return sampling

    def describe(self):
        import comfy.model_management

        comfy.model_management.load_models_gpu([self.patcher])  # weights where ComfyUI computes with them
        sigmas = self._sampling().sigmas.detach().to("cpu", torch.float64)
        self.sigmas = sigmas.float()
        diffusion = self.patcher.model.diffusion_model
        weights = [(f"diffusion_model.{name}.weight", list(module.weight.shape))
                   for name, module in diffusion.named_modules()
                   if isinstance(module, torch.nn.Linear) and module.weight is not None and module.weight.dim() == 2]
        first = next(diffusion.parameters(), None)
        self.device = first.device if first is not None else torch.device("cpu")
        return weights, (1.0 / (1.0 + sigmas * sigmas)).float(), str(self.device)

    # ---- fingerprint ----
    def fingerprint(self):
        """SHA-256 of what the model computes with: its class, its sampling (type and sigmas) and every
        weight of the diffusion model as loaded (ComfyUI applies weight patches when it loads a model),
        so a cancelled run resumes only on the same MODEL."""
        import hashlib

        import comfy.model_management

        comfy.model_management.load_models_gpu([self.patcher])
        digest = hashlib.sha256()
        sampling = self.patcher.get_model_object("model_sampling")
        digest.update(f"{type(self.patcher.model).__name__}/{type(sampling).__name__}".encode())
        tensors = [("model_sampling.sigmas", getattr(sampling, "sigmas", None))]
        tensors += sorted(self.patcher.model.diffusion_model.state_dict().items())
        with torch.inference_mode():  # reads ComfyUI's inference tensors as they are
            for name, tensor in tensors:
                if not torch.is_tensor(tensor):
                    continue
                digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                flat = tensor.detach().to("cpu").contiguous().reshape(-1)
                digest.update(flat.view(torch.uint8).numpy())
        return digest.hexdigest()

    # ---- predict ----
    def predict(self, x_t, t, context, adapters):
        sigma = self.sigmas[t.cpu()].to(self.device)                      # [B]
        x = x_t.to(self.device) * (sigma * sigma + 1.0).sqrt().view(-1, 1, 1, 1)
        self.enabled = bool(adapters)
        with torch.inference_mode(False), (torch.enable_grad() if adapters else torch.no_grad()):
            denoised = self.patcher.model.apply_model(x, sigma, c_crossattn=context.to(self.device))
            eps = (x - denoised.float()) / sigma.view(-1, 1, 1, 1)
        return eps.to(x_t.device)

    # ---- attach ----
    def attach(self, adapters):
        for hook in self.hooks:
            hook.remove()
        self.hooks = []
        self._restore()
        if not adapters:
            return
        diffusion = self.patcher.model.diffusion_model
        modules = dict(diffusion.named_modules())
        self._thaw(diffusion)
        for key, down, up, scale in adapters:
            path = key[len("diffusion_model."):-len(".weight")]
            if path not in modules:
                raise ValueError(f"{self.where}: the MODEL has no layer '{path}' for the LoRA weight '{key}'")
            self.hooks.append(modules[path].register_forward_hook(self._hook(down, up, float(scale))))

    def _hook(self, down, up, scale):
        def hook(module, inputs, output):
            if not self.enabled:
                return output
            x = inputs[0]
            delta = torch.nn.functional.linear(torch.nn.functional.linear(x.to(down.dtype), down), up)
            return output + (scale * delta).to(output.dtype)

        return hook

    def _thaw(self, diffusion):
        with torch.inference_mode(False):
            for module in diffusion.modules():
                for name, parameter in list(module._parameters.items()):
                    if parameter is None:
                        continue
                    if parameter.is_inference():
                        self.swapped.append((module, name, "parameter", parameter))
                        module._parameters[name] = torch.nn.Parameter(parameter.detach().clone(), requires_grad=False)
                    elif parameter.requires_grad:
                        self.swapped.append((module, name, "requires_grad", parameter))
                        parameter.requires_grad_(False)
                for name, buffer in list(module._buffers.items()):
                    if buffer is not None and buffer.is_inference():
                        self.swapped.append((module, name, "buffer", buffer))
                        module._buffers[name] = buffer.detach().clone()

    def _restore(self):
        for module, name, kind, original in reversed(self.swapped):
            if kind == "parameter":
                module._parameters[name] = original
            elif kind == "buffer":
                module._buffers[name] = original
            else:
                original.requires_grad_(True)
        self.swapped = []


def host_model_value(lethe, model, where):
    """The MODEL as a native host-model value (callbacks into a HostModelAdapter)."""
    adapter = HostModelAdapter(model, where)
    name = type(getattr(model, "model", model)).__name__
    return lethe.host_model(adapter.describe, adapter.predict, adapter.attach, f"ComfyUI MODEL ({name}) at {where}",
                            adapter.fingerprint)
