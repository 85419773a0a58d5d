"""An offline voice assistant appliance: Vosk/pocketsphinx ASR, a quantized LLM via llama.cpp, Piper TTS."""

__version__ = "0.1.0"
