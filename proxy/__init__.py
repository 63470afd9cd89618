"""gatewatch's gateway: the Anthropic Messages API in front of Gemini, recorded. No screen here."""

__version__ = "0.1.0"
