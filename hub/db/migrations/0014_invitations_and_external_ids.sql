-- A token that names no company (Supabase's) is placed by this table: its
-- `sub` is a user's id or the `external_id` linked to one (docs/api.md
-- "Using Supabase auth").
ALTER TABLE users ADD COLUMN external_id uuid;
CREATE UNIQUE INDEX users_external_id_key ON users (external_id);

-- An owner or admin asks someone to join the company: the person accepts
-- with the token (only its hash is kept) and an identity with this email.
CREATE TABLE invitations (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    email        text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'member')),
    token_hash   bytea NOT NULL UNIQUE,
    -- who invited: an identity provider's user may have no row, so no reference
    invited_by   uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    user_id      uuid REFERENCES users (id) ON DELETE SET NULL
);
-- One open invitation per address and company (revoke, then invite again).
CREATE UNIQUE INDEX invitations_open_email_key
    ON invitations (company_id, lower(email)) WHERE accepted_at IS NULL;
SELECT syntera_enable_tenancy('invitations');
