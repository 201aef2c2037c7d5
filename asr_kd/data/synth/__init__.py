"""Offline speech synthesis (eSpeak NG) and the embedded digit-string corpus."""
