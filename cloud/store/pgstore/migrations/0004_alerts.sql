-- Fleet alerts: rules, where each rule stands for each part, and each
-- rule's history. The evaluator changes a state and records its event in
-- one serializable transaction, so of several replicas only one records a
-- given transition.
CREATE TABLE alert_rules (
	id     text COLLATE "C" PRIMARY KEY,
	org_id text COLLATE "C" NOT NULL,
	doc    json NOT NULL
);
CREATE INDEX alert_rules_org ON alert_rules (org_id, id);

CREATE TABLE alert_states (
	rule_id text COLLATE "C" NOT NULL,
	part_id text COLLATE "C" NOT NULL,
	doc     json NOT NULL,
	PRIMARY KEY (rule_id, part_id)
);

CREATE TABLE alert_events (
	id      text COLLATE "C" PRIMARY KEY,
	rule_id text COLLATE "C" NOT NULL,
	doc     json NOT NULL
);
CREATE INDEX alert_events_rule ON alert_events (rule_id, id);
