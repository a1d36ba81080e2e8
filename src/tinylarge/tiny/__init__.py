"""LargeML -> TinyML: distillation, int8 quantization, integer-only runtime, MCU cost model."""
