"""The voice agent: a livekit-agents `AgentSession` that uses the chat's LLM
clients, retrieval and tools, with offline speech (silero VAD, pocketsphinx,
Piper) or OpenAI's. `session.py` builds a call for any transport (a LiveKit
room, or custom audio input and output); `worker.py` runs it for LiveKit."""
