DROP TABLE IF EXISTS order_status;
