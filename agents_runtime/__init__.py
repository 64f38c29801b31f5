"""What thinks: LLM clients, chat turns, knowledge ingestion and retrieval,
workflows and the voice agent. Imports `hub`; `hub` never imports it
(except in hub/app.py and hub/__main__.py)."""
