-- Argo CD health check for vivified.dev/VivifiedPlugin (docs/ui.md installs it).
-- Without it Argo CD shows every plugin "Healthy" the moment it exists. It maps the
-- operator's status: phase (Pending/Active/Disabled/Invalid), health (unknown/healthy/
-- degraded/unhealthy) and the Ready condition; a status older than the spec is Progressing.
local hs = {}
local status = obj.status

local function ready_condition()
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

local function with_error(text)
  if status.lastError ~= nil and status.lastError ~= "" then
    return text .. ": " .. status.lastError
  end
  return text
end

if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Vivified operator to report a phase"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to process generation " .. generation
  return hs
end

local ready = ready_condition()
local ready_message = ""
if ready ~= nil and ready.message ~= nil then
  ready_message = ready.message
end

if status.phase == "Invalid" then
  hs.status = "Degraded"
  hs.message = "Invalid manifest: " .. ready_message
  return hs
end

if status.phase == "Disabled" then
  hs.status = "Suspended"
  hs.message = "Disabled: scaled to 0, token revoked"
  return hs
end

if status.phase == "Pending" then
  hs.status = "Progressing"
  hs.message = "Pending: " .. ready_message
  return hs
end

if status.phase == "Active" then
  if status.health == "unhealthy" then
    hs.status = "Degraded"
    hs.message = with_error("Unhealthy")
    return hs
  end
  if status.health == "degraded" then
    hs.status = "Degraded"
    hs.message = with_error("Degraded (" .. tostring(status.consecutiveFailures or 0) .. " failed probes)")
    return hs
  end
  if ready ~= nil and ready.status ~= "True" then
    hs.status = "Progressing"
    hs.message = "Active but not Ready: " .. ready_message
    return hs
  end
  hs.status = "Healthy"
  if status.health == "healthy" then
    hs.message = "Active and healthy"
  else
    hs.message = "Active; no health probe result yet"
  end
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown phase " .. tostring(status.phase)
return hs
