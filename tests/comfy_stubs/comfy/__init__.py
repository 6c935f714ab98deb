"""Stand-in for the ``comfy`` package of ComfyUI (tests only): ``utils``, ``model_management``,
``model_patcher`` with ComfyUI's names and signatures."""
