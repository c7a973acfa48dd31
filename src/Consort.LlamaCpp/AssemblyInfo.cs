namespace Consort.LlamaCpp;
