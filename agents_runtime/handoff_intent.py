"""Does a visitor's message clearly ask for a person? The offline responder's
reason to hand the conversation over, as a model would with its handoff tool.

The rule, per sentence (split at . ? ! ;), lower-cased:
- a request is "talk/speak/chat to/with" a person ("talk to a human", "speak
  with someone", "chat with an agent"), "connect/transfer/put/pass me (to)",
  "get/give/find me" a person ("connect me with a customer service
  representative", "get me a real person"), "want/need/prefer/request" a
  human ("I need a human": not "an agent", which may be the AI being set
  up), a person "I can talk to" ("is there a human I can talk to?"), or a
  sentence that is nothing but a person and courtesy words ("agent please",
  "real person", "customer service representative", "agent");
- a person is a human, a real/live/actual person or agent, a person,
  someone, a representative or rep, an operator, staff, a team member, a
  manager, customer service/support/care (not "support" alone: "I need
  support with my invoice" is a question), and after talk/connect/get an
  agent or people;
- a sentence that asks about something ("are you human?", "what does a human
  agent cost?", "how much is a live agent?", "am I talking to a person?":
  it begins with are you, is this/that/it, am I, what, how much, how many,
  why, who, does) or is negated ("I don't want to talk to a human") is no
  request.
Anything else ("your agent said…", "I want the agent to reply in French")
is not a request: a missed request gets an answer and the visitor can ask
again, while a wrong handoff silences the AI for the rest of the conversation.
"""

from __future__ import annotations

import re

_ARTICLE = r"(?:(?:a|an|the|some|any|your|one\s+of\s+your)\s+)?"
# Unmistakably a person (not the AI agent being configured, not "support" as help).
_HUMAN = (
    r"(?:human(?:\s+(?:being|agent|person))?"
    r"|(?:real|live|actual)\s+(?:person|agent|human)"
    r"|customer\s+(?:service|support|care)(?:\s+(?:team|agent|person|representative|rep))?"
    r"|(?:service|support)\s+(?:agent|person|representative|rep)"
    r"|person|representative|rep|operator|staff|team\s+member|manager|someone|somebody)"
    r"(?![\w'])"
)
# After "talk to" or "connect me with", an agent or people are persons too.
_PERSON = rf"(?:{_HUMAN}|(?:agent|people)(?![\w']))"
_REQUEST = re.compile(
    "|".join(
        [
            rf"\b(?:talk|speak|chat)\s+(?:to|with)\s+{_ARTICLE}{_PERSON}",
            rf"\b(?:connect|transfer|put|pass)\s+(?:me|us)\s+(?:(?:through\s+|over\s+)?to\s+|with\s+)?{_ARTICLE}{_PERSON}",
            rf"\b(?:get|give|find)\s+(?:me|us)\s+{_ARTICLE}{_PERSON}",
            rf"\b(?:want|need|prefer|request)\s+{_ARTICLE}{_HUMAN}",
            rf"{_ARTICLE}{_PERSON}\s+(?:i|we)\s+(?:can|could)\s+(?:talk|speak|chat)\b",
        ]
    )
)
_ONLY_PERSON = re.compile(
    rf"(?:(?:please|pls|now)\s+)*{_ARTICLE}{_PERSON}(?:\s+(?:please|pls|now|asap))*"
)
_ASKS_ABOUT = re.compile(
    r"^(?:are\s+(?:you|u)|r\s+u|is\s+(?:this|that|it)|am\s+i|what|how\s+much|how\s+many"
    r"|why|who|does)\b"
)
_NEGATED = re.compile(r"\b(?:don'?t|do\s+not|doesn'?t|no\s+need|never|not\s+(?:want|need))\b")
_SENTENCES = re.compile(r"[.?!;]+")
_NOISE = re.compile(r"[^\w\s']+")


def asks_for_a_person(text: str) -> bool:
    normalised = text.lower().replace("’", "'")
    for sentence in _SENTENCES.split(normalised):
        words = " ".join(_NOISE.sub(" ", sentence).split())
        if not words or _ASKS_ABOUT.match(words) or _NEGATED.search(words):
            continue
        if _REQUEST.search(words) or _ONLY_PERSON.fullmatch(words):
            return True
    return False
