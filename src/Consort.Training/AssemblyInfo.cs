namespace Consort.Training;
