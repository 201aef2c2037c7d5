"""Layer 7 (beside scoring): shipping a trained system: a self-contained model directory (``model_dir``), its networks in
ONNX / TorchScript / int8 (``networks``), audio in and features out, chunk by chunk (``audio``),
a streaming recogniser whose final result is the offline one (``recognizer``), and the deployment
table that shows what distillation saves (``table``)."""
