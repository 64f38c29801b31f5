-- A phone call's media stream starts one conversation. The stream token the
-- Twilio webhook hands out names the call; a second stream with the same
-- token (a replay within its two minutes) must not start a second one.
CREATE UNIQUE INDEX conversations_phone_call_key
    ON conversations (company_id, (metadata ->> 'call_sid'))
    WHERE channel = 'phone' AND metadata ? 'call_sid';
