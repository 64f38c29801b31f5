-- What a staff token's check reads (users, companies) tells every process
-- when it changes, whoever changes it — the hub, or an operator in psql —
-- so that a process's cache of recent token checks (hub/tokencache.py)
-- drops what no longer holds. NOTIFY is delivered at commit, to every
-- process listening on this database, and never for a rolled-back change.
CREATE FUNCTION syntera_auth_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed jsonb;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN  -- TRUNCATE: no rows to name
        changed := jsonb_build_object('all', true);
    ELSIF TG_TABLE_NAME = 'companies' THEN
        changed := jsonb_build_object('company_id', OLD.id);
    ELSIF TG_OP = 'INSERT' THEN
        -- A new user (or a sub newly linked to one) re-places tokens of that sub.
        changed := jsonb_build_object(
            'user_ids', jsonb_build_array(NEW.id, NEW.external_id),
            'company_id', NEW.company_id);
    ELSIF TG_OP = 'UPDATE' THEN
        changed := jsonb_build_object(
            'user_ids', jsonb_build_array(OLD.id, OLD.external_id, NEW.id, NEW.external_id),
            'company_id', OLD.company_id);
    ELSE
        changed := jsonb_build_object(
            'user_ids', jsonb_build_array(OLD.id, OLD.external_id),
            'company_id', OLD.company_id);
    END IF;
    PERFORM pg_notify('syntera_auth_changed', changed::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_auth_changed AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION syntera_auth_changed();
CREATE TRIGGER users_auth_truncated AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION syntera_auth_changed();
CREATE TRIGGER companies_auth_changed AFTER DELETE ON companies
    FOR EACH ROW EXECUTE FUNCTION syntera_auth_changed();
CREATE TRIGGER companies_auth_truncated AFTER TRUNCATE ON companies
    FOR EACH STATEMENT EXECUTE FUNCTION syntera_auth_changed();
