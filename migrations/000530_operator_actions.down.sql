DROP TABLE IF EXISTS operator_action;
