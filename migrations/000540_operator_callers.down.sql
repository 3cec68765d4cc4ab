DELETE FROM operator_action WHERE via <> 'cli';
ALTER TABLE operator_action DROP COLUMN addr;
ALTER TABLE operator_action DROP COLUMN status;
ALTER TABLE operator_action DROP COLUMN via;
ALTER TABLE operator_action DROP CONSTRAINT operator_action_action_check;
ALTER TABLE operator_action ADD CONSTRAINT operator_action_action_check
    CHECK (action IN ('retry', 'cancel'));
