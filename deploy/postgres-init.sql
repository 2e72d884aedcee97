-- One database per service: no service reads another's tables.
CREATE DATABASE intake;
CREATE DATABASE regulation;
CREATE DATABASE scheduler;
CREATE DATABASE notifier;
