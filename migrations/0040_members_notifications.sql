-- MEMBERS notifications carry invitees' email addresses and now go to owners and admins only
-- (internal/audit's areas). Those already made for anyone else are taken back.
DELETE FROM notifications
WHERE area = 'MEMBERS'
  AND NOT EXISTS (SELECT 1 FROM memberships m
                  WHERE m.user_id = notifications.user_id AND m.workspace_id = notifications.workspace_id
                    AND m.role IN ('OWNER', 'ADMIN'));
