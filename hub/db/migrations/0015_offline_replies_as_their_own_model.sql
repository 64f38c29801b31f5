-- Replies written by the built-in offline responder were recorded as the
-- agent's configured model (chat: model "gpt-4o-mini", served_model
-- "offline") or as "offline" (voice), with token counts estimated at four
-- characters a token, so analytics priced a model that was never called.
-- They become what answered them: the model "offline-responder", no tokens,
-- cost 0 (hub/pricing.py). Only rows whose own metadata says the offline
-- responder answered are touched; nothing else marks them.
UPDATE messages
   SET model = 'offline-responder',
       prompt_tokens = 0,
       completion_tokens = 0,
       ai_metadata = ai_metadata
           || '{"model": "offline-responder", "prompt_tokens": 0, "completion_tokens": 0,
                "tokens_used": 0, "cost": 0}'::jsonb
           || CASE WHEN ai_metadata ? 'served_model'
                   THEN '{"served_model": "offline-responder"}'::jsonb
                   ELSE '{}'::jsonb END
 WHERE sender_type = 'agent'
   AND (ai_metadata->>'served_model' = 'offline' OR ai_metadata->>'model' = 'offline');
