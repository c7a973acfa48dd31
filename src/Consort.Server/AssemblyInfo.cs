namespace Consort.Server;
