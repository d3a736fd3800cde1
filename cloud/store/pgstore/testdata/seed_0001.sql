-- Rows as version 1 of the schema holds them, written by hand as an older
-- cloud would have: the migration test reads them back through the store.
INSERT INTO orgs (id, doc) VALUES ('seed-org', '{"ID":"seed-org","Name":"Seeded","CreatedAt":"2026-01-02T03:04:05Z","BundleTTL":3600000000000}');
INSERT INTO locations (id, org_id, parent_id, doc) VALUES ('seed-loc', 'seed-org', '',
  '{"ID":"seed-loc","OrgID":"seed-org","ParentID":"","Name":"Plant","SupportAccess":false,"SharedWith":["other"],"CreatedAt":"2026-01-02T03:04:05Z"}');
INSERT INTO users (id, email, doc) VALUES ('seed-user', 'seed@example.com',
  '{"ID":"seed-user","Email":"seed@example.com","PasswordHash":"h","Admin":false,"CreatedAt":"2026-01-02T03:04:05Z","TokensNotBefore":"0001-01-01T00:00:00Z","RevokedTokens":[{"ID":"t1","ExpiresAt":"2026-02-01T00:00:00Z"}]}');
UPDATE generation SET value = 7;
INSERT INTO machines (id, location_id, doc) VALUES ('seed-machine', 'seed-loc',
  '{"ID":"seed-machine","LocationID":"seed-loc","Name":"Rover","RestartRequestedAt":"0001-01-01T00:00:00Z","CreatedAt":"2026-01-02T03:04:05Z"}');
