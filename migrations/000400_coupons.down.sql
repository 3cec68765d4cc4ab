DROP TABLE IF EXISTS coupon_notification;
DROP TABLE IF EXISTS failed_coupon_issue;
DROP TABLE IF EXISTS coupon_issue;
DROP TABLE IF EXISTS coupon;
