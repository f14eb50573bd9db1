/**
 * The catalogue of well-known services a VM can USE (reach elsewhere: outbound to the service's ports)
 * or PROVIDE (serve: inbound to them, replies included). Toggling one regenerates exactly its rules.
 * Pure data, shared by the API (listing, validation) and the worker (rule generation).
 */

/** A port or port range of a service. */
export interface ServicePort {
  protocol: 'tcp' | 'udp';
  port: number;
  /** Last port of a range (inclusive). */
  endPort?: number;
}

/** A well-known service. */
export interface ServiceDefinition {
  /** Stable id used in the API and the DB (`ssh`, `https`, …). */
  id: string;
  name: string;
  description: string;
  ports: readonly ServicePort[];
}

const tcp = (port: number, endPort?: number): ServicePort => ({
  protocol: 'tcp',
  port,
  ...(endPort ? { endPort } : {}),
});
const udp = (port: number, endPort?: number): ServicePort => ({
  protocol: 'udp',
  port,
  ...(endPort ? { endPort } : {}),
});

/** Every service vmflow knows, in display order. */
export const SERVICES: readonly ServiceDefinition[] = [
  { id: 'ssh', name: 'SSH', description: 'Secure shell', ports: [tcp(22)] },
  { id: 'rdp', name: 'RDP', description: 'Remote Desktop Protocol', ports: [tcp(3389), udp(3389)] },
  { id: 'vnc', name: 'VNC', description: 'Virtual Network Computing', ports: [tcp(5900, 5909)] },
  { id: 'http', name: 'HTTP', description: 'Web (plain)', ports: [tcp(80)] },
  { id: 'https', name: 'HTTPS', description: 'Web (TLS), and HTTP/3 over QUIC', ports: [tcp(443), udp(443)] },
  { id: 'dns', name: 'DNS', description: 'Domain name resolution', ports: [udp(53), tcp(53)] },
  { id: 'ntp', name: 'NTP', description: 'Network time', ports: [udp(123)] },
  { id: 'smtp', name: 'SMTP', description: 'Mail transfer', ports: [tcp(25)] },
  { id: 'submission', name: 'SMTP submission', description: 'Mail submission (STARTTLS)', ports: [tcp(587)] },
  { id: 'smtps', name: 'SMTPS', description: 'Mail submission over TLS', ports: [tcp(465)] },
  { id: 'imap', name: 'IMAP', description: 'Mailbox access', ports: [tcp(143)] },
  { id: 'imaps', name: 'IMAPS', description: 'Mailbox access over TLS', ports: [tcp(993)] },
  { id: 'pop3', name: 'POP3', description: 'Mailbox download', ports: [tcp(110)] },
  { id: 'pop3s', name: 'POP3S', description: 'Mailbox download over TLS', ports: [tcp(995)] },
  { id: 'ftp', name: 'FTP', description: 'File transfer (control channel)', ports: [tcp(21)] },
  { id: 'smb', name: 'SMB', description: 'Windows file sharing', ports: [tcp(445)] },
  { id: 'ldap', name: 'LDAP', description: 'Directory', ports: [tcp(389)] },
  { id: 'ldaps', name: 'LDAPS', description: 'Directory over TLS', ports: [tcp(636)] },
  { id: 'kerberos', name: 'Kerberos', description: 'Authentication', ports: [tcp(88), udp(88)] },
  { id: 'mysql', name: 'MySQL / MariaDB', description: 'MySQL protocol', ports: [tcp(3306)] },
  { id: 'postgresql', name: 'PostgreSQL', description: 'PostgreSQL protocol', ports: [tcp(5432)] },
  { id: 'mssql', name: 'SQL Server', description: 'Microsoft SQL Server', ports: [tcp(1433)] },
  { id: 'redis', name: 'Redis', description: 'Redis protocol', ports: [tcp(6379)] },
  { id: 'mongodb', name: 'MongoDB', description: 'MongoDB protocol', ports: [tcp(27017)] },
  {
    id: 'winrm',
    name: 'WinRM',
    description: 'Windows remote management (HTTP and HTTPS)',
    ports: [tcp(5985, 5986)],
  },
] as const;

const BY_ID = new Map(SERVICES.map((s) => [s.id, s]));

/** The service with this id, or undefined. */
export function findService(id: string): ServiceDefinition | undefined {
  return BY_ID.get(id);
}
