import type { IncomingHttpHeaders } from 'node:http';
import { MissingMetadataFlavorError, ProxiedRequestError } from '../errors.js';
import { proxyHeaderIn } from './proxy-headers.js';

/** Why a metadata request's headers are refused (a proxy relayed it, or it lacks the flavor header), or undefined. */
export function metadataHeaderRefusal(headers: IncomingHttpHeaders): Error | undefined {
  const proxied = proxyHeaderIn(headers);
  if (proxied !== undefined) {
    return new ProxiedRequestError(`requests relayed by a proxy (${proxied}) are refused`, {
      hint: 'connect to tokend directly; set NO_PROXY=127.0.0.1,localhost,metadata.google.internal for programs that use a proxy',
    });
  }
  if (headers['metadata-flavor'] !== 'Google') {
    return new MissingMetadataFlavorError('metadata requests need the header "Metadata-Flavor: Google"', { hint: 'send it: `curl -H "Metadata-Flavor: Google" ...`' });
  }
  return undefined;
}
