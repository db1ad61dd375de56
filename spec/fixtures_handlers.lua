-- Handlers file for the examples/serve.lua spec.
return {
  add = function(a, b) return a + b end,
  app = { users = { count = function() return 2 end } },
}
