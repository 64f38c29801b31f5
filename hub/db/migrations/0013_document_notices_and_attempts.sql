-- `notice`: what the reader should know of how a processed document was read
-- (characters PostgreSQL text cannot hold, removed from its text).
-- `last_error`: why its last attempt failed; a document that fails the same
-- way twice, or too many times, ends `failed` with it (docs/knowledge.md).
ALTER TABLE documents ADD COLUMN notice text, ADD COLUMN last_error text;
