"""Stand-in for ``comfy.model_patcher.ModelPatcher``: wraps an ``nn.Module``, moves it between the load and
offload devices the way ComfyUI does (``partially_load`` fully loads, ``detach`` moves back to the offload device)
and keeps ComfyUI's bookkeeping attributes on the module (``device``, ``model_loaded_weight_memory``)."""

from __future__ import annotations

import comfy.model_management


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.size = size
        self.model = model
        if not hasattr(self.model, "device") or self.model.device is None:
            self.model.device = offload_device
        self.patches = {}
        self.backup = {}
        self.object_patches = {}
        self.model_options = {"transformer_options": {}}
        self.model_size()
        self.load_device = load_device
        self.offload_device = offload_device
        self.weight_inplace_update = weight_inplace_update
        self.parent = None
        if not hasattr(self.model, "model_loaded_weight_memory"):
            self.model.model_loaded_weight_memory = 0
        if not hasattr(self.model, "model_lowvram"):
            self.model.model_lowvram = False

    def model_size(self):
        if self.size > 0:
            return self.size
        self.size = comfy.model_management.module_size(self.model)
        return self.size

    def loaded_size(self):
        return self.model.model_loaded_weight_memory

    def is_clone(self, other):
        return hasattr(other, "model") and self.model is other.model

    def model_patches_models(self):
        return []

    def model_patches_to(self, device):
        return None

    def model_dtype(self):
        if hasattr(self.model, "get_dtype"):
            return self.model.get_dtype()
        return None

    def current_loaded_device(self):
        return self.model.device

    def patch_model(self, device_to=None, lowvram_model_memory=0, load_weights=True, force_patch_weights=False):
        if load_weights:
            self.load(device_to, lowvram_model_memory=lowvram_model_memory, full_load=True)
        return self.model

    def load(self, device_to=None, lowvram_model_memory=0, force_patch_weights=False, full_load=False):
        self.model.to(device_to)
        self.model.device = device_to
        self.model.model_loaded_weight_memory = self.model_size()

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
        current_used = self.model.model_loaded_weight_memory
        if current_used > 0:
            return 0
        self.load(device_to, lowvram_model_memory=current_used + extra_memory, full_load=True)
        return self.model.model_loaded_weight_memory - current_used

    def unpatch_model(self, device_to=None, unpatch_weights=True):
        if unpatch_weights and device_to is not None:
            self.model.to(device_to)
            self.model.device = device_to
            self.model.model_loaded_weight_memory = 0

    def detach(self, unpatch_all=True):
        self.model_patches_to(self.offload_device)
        if unpatch_all:
            self.unpatch_model(self.offload_device, unpatch_weights=unpatch_all)
        return self.model
