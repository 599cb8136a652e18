-- When a serial is next due for maintenance (legacy tbl_serial.NextMaintenanceDate): set by
-- `PATCH /serials/{id}` (merge patch, If-Match) and read by the maintenance-due report.
alter table serial add column next_maintenance_date date;
create index serial_maintenance_idx on serial (tenant_id, next_maintenance_date, serial_id)
    where next_maintenance_date is not null;
