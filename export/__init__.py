"""The export stage, installed as ``dcme_keras.export``: TFLite conversion, quantization,
parity checks and the CPU latency measurements."""
