"""Pure Anthropic ⇄ Gemini translation: no I/O, no clocks, no globals."""
