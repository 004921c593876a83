// Apart from the clients that call them, so that reading the configuration loads no HTTP client code.
export const GOOGLE_RESOURCE_MANAGER = 'https://cloudresourcemanager.googleapis.com';
