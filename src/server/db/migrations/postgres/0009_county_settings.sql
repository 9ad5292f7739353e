-- County settings: the settings page lists its latest changes from the audit log.
CREATE INDEX audit_action_at ON audit(action, at);
