import { fileURLToPath } from 'node:url';

/**
 * The directory tokend runs from (a checkout, or the installed package). Every file that asks sits
 * one level below it: dist/*.js, src/*.ts under tsx, and the CLI's bundle dist/tokend.cjs.
 */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
