public enum VTPTransportPlaceholder {}
