"""What the service removes from call data before it keeps it: framework-free, imports no app
package, so personas, services and tests can all use it."""
