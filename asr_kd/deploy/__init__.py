"""Layer 8: shipping a trained system: a self-contained model directory (``model_dir``), its networks in
ONNX / TorchScript / int8 (``networks``), audio in and features out, chunk by chunk (``audio``), and a
streaming recogniser whose final result is the offline one (``recognizer``). The deployment table is
``asr_kd.stages.deploy``."""
