import type { Credential, SecretStore } from './secret-store.js';

/** Secrets in process memory only: for tests and throwaway runs. Lost when the process ends. */
export class MemoryStore implements SecretStore {
  readonly kind = 'memory' as const;
  readonly description = 'memory (secrets are lost when the daemon stops)';
  private readonly services = new Map<string, Map<string, string>>();

  getPassword(service: string, account: string): Promise<string | null> {
    return Promise.resolve(this.services.get(service)?.get(account) ?? null);
  }

  setPassword(service: string, account: string, password: string): Promise<void> {
    let accounts = this.services.get(service);
    if (accounts === undefined) {
      accounts = new Map();
      this.services.set(service, accounts);
    }
    accounts.set(account, password);
    return Promise.resolve();
  }

  deletePassword(service: string, account: string): Promise<boolean> {
    const accounts = this.services.get(service);
    const deleted = accounts?.delete(account) ?? false;
    if (accounts?.size === 0) this.services.delete(service);
    return Promise.resolve(deleted);
  }

  findCredentials(service: string): Promise<Credential[]> {
    const accounts = this.services.get(service);
    return Promise.resolve(
      accounts === undefined ? [] : [...accounts].map(([account, password]) => ({ account, password })),
    );
  }
}
