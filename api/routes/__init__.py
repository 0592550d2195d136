"""The control room's and the volunteers' endpoints, one router per resource."""
