package cloudsync

// NewClientWithDial is NewClient with the transport's dialer replaced, for
// tests that reach a cloud by a name no DNS knows without a proxy between.
var NewClientWithDial = newClient
