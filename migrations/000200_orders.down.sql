DROP TABLE IF EXISTS order_request;
